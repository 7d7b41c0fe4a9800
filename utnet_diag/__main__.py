"""``python -m utnet_diag``."""

from utnet_diag.cli.app import run

if __name__ == "__main__":
    run()
