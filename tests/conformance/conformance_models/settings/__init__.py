# Code of its own: a parent package that only its submodules need stays a placeholder.
NAME = "settings"
