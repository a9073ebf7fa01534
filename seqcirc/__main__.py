"""`python -m seqcirc` runs the command line."""

from seqcirc.cli import main

main()
