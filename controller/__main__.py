"""`python -m controller` is `curtaild`."""

from controller.cli import main

raise SystemExit(main())
