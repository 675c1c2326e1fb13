"""Reading an unzipped package folder (torch.package's ``_directory_reader``)."""

from .archive.reader import DirectoryArchiveReader as DirectoryReader

__all__ = ["DirectoryReader"]
