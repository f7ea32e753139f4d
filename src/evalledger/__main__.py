"""``python -m evalledger``."""

from evalledger.cli import main

main()
