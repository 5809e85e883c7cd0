"""The user's files: which are images and how to read them safely, metadata catalogs, EXIF,
exclusions, the folders a command may touch, and whether a listed file is still the indexed one."""
