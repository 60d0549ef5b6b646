"""``python -m hybridrl`` runs the command-line interface."""

from hybridrl.cli import main

main()
