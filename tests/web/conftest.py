"""The auditors' console under test: a real `kyso serve` and a real `kyso web` (child
processes on free ports), and headless Chromium from Debian driven by Selenium through
/usr/bin/chromedriver. Each browser test saves a screenshot under tmp/artefacts/web/ (or
$KYSO_ARTEFACTS/web/)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kyso.dev.init import DevEnvironment
from kyso.dev.setup import render_web_settings, web_secrets
from tests.kyso.served import Served, free_port, serve

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("KYSO_ARTEFACTS", ROOT / "tmp" / "artefacts")) / "web"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@dataclass
class Console:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    settings: Path
    auditor_token: str
    operator_token: str
    service: Served


@pytest.fixture(scope="module")
def service(dev_env: DevEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`kyso serve` signing a tree head every second (so fresh events get proofs quickly),
    with its metrics endpoint on a free port (the operator page reads it)."""
    directory = tmp_path_factory.mktemp("web-service")
    metrics = f"127.0.0.1:{free_port()}"
    served = serve(
        dev_env,
        directory,
        head_interval_seconds=1,
        edit=lambda text: text.replace('metrics_address = ""', f'metrics_address = "{metrics}"'),
    )
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def console(
    dev_env: DevEnvironment, service: Served, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    from kyso.config import load_config

    # A low public rate so the limit is reached within the test.
    with start_console(
        dev_env,
        service,
        tmp_path_factory.mktemp("web-console"),
        metrics_address=load_config(service.config).server.metrics_address,
        extra="public_per_minute = 4\n",
    ) as started:
        yield started


@contextlib.contextmanager
def start_console(
    dev_env: DevEnvironment,
    service: Served,
    directory: Path,
    *,
    metrics_address: str,
    extra: str = "",
) -> Iterator[Console]:
    """`kyso web` over ``service`` with the development settings (``extra``: more top-level
    keys), stopped when the block ends."""
    port = free_port()
    settings = directory / "web.toml"
    text = render_web_settings(
        dev_env,
        server=service.address,
        listen=f"127.0.0.1:{port}",
        metrics_address=metrics_address,
    )
    settings.write_text(extra + text)
    log = directory / "web.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kyso.cli.main", "web", "--settings", str(settings)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/dang-nhap", timeout=2) as reply:  # noqa: S310
                if reply.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"kyso web did not start:\n{log.read_text()}")
        time.sleep(0.2)
    _, auditor, operator = web_secrets(dev_env.home)
    try:
        yield Console(
            url=url,
            process=process,
            log=log,
            settings=settings,
            auditor_token=auditor.read_text().strip(),
            operator_token=operator.read_text().strip(),
            service=service,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.fixture
def browser(tmp_path: Path, downloads: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """Headless Chromium (Debian's), a fresh profile, downloads into ``downloads``; a
    screenshot of the last page is saved when the test ends, whatever its outcome."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail(
            "chromium and chromium-driver are needed: scripts/bootstrap.sh test installs them"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path / "profile"
    profile.mkdir()
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        "--lang=vi",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTEFACTS / f"{request.node.name}.png"))
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
