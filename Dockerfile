# kyso — production image (multi-stage, non-root). No Docker engine runs on the development
# machines, so this file is kept simple and checked by reading; see docs/operations.md.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY kyso ./kyso
COPY signer ./signer
COPY hsm ./hsm
COPY storage ./storage
COPY exchange ./exchange
COPY audit ./audit
COPY workers ./workers
# kyso without extras: the development tooling (`kyso dev`, certomancer and its web server) is
# the devtools extra and stays out; the build fails if anything brought certomancer in anyway.
RUN python -m venv /opt/kyso \
 && /opt/kyso/bin/pip install --no-cache-dir -c constraints.txt . \
 && /opt/kyso/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('certomancer') is not None)"

FROM python:3.11-slim-bookworm
# The PKCS#11 module of the HSM vendor is mounted or installed by the operator; opensc gives
# pkcs11-tool for diagnosis, poppler-utils pdfsig for cross-checks, Noto for Vietnamese stamps.
RUN apt-get update \
 && apt-get install -y --no-install-recommends opensc poppler-utils fonts-noto-core \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/kyso --create-home kyso
COPY --from=build /opt/kyso /opt/kyso
ENV PATH=/opt/kyso/bin:$PATH KYSO_CONFIG=/etc/kyso/kyso.toml
USER kyso
WORKDIR /var/lib/kyso
EXPOSE 50051 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["kyso", "health", "--timeout", "4"]
ENTRYPOINT ["kyso"]
CMD ["serve"]
