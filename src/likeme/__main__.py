"""`python -m likeme` is the `likeme` command (what `accelerate launch -m likeme` and torchrun run)."""
from likeme.cli.main import main

if __name__ == "__main__":
    main()
