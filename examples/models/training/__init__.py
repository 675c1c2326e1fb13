"""Training-only code: the packages mock it out, so none of it ships."""
