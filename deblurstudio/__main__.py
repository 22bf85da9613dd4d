"""`python -m deblurstudio [PHOTO]` opens the desktop application (same as `deblurstudio`)."""

from deblurstudio.gui.app import main

raise SystemExit(main())
