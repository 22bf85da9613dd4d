"""DeblurStudio: see where and how a photo is motion-blurred, and deblur only there."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deblurstudio")
except PackageNotFoundError:  # running from a source tree or a frozen bundle without metadata
    __version__ = "0.1.0"
