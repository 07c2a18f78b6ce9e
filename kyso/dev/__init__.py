"""Development tooling: provisioning of SoftHSM2 tokens for `kyso dev init` and the test suite."""
