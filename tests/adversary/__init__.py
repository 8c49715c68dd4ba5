"""Tests that play a hostile host against the PAL and the LibOS (see docs/security.md)."""
