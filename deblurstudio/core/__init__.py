"""GUI-free engine: image I/O, tiling, devices, masks, visualisation, the deblur/analyse
pipeline and batch jobs. Never imports Qt (checked by import-linter contracts in pyproject.toml)."""
