"""Generated gRPC stubs for package kyso.v1 (scripts/gen_protos.py writes them; do not edit)."""
