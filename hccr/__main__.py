"""``python -m hccr`` (and ``torchrun ... -m hccr train ...``): the ``hccr`` command."""

from .cli import main

if __name__ == "__main__":
    main()
