"""The original script's entry point: ``python compare_components.py compare ...``.

It runs the same Typer application as ``parakeet-coreml`` (every subcommand works here).
"""

from parakeet_coreml.cli import main

if __name__ == "__main__":
    main()
