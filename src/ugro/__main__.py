"""`python -m ugro` runs the command line."""

from ugro.cli import main

main()
