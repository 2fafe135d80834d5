"""Tools that work on the repository from above its chapters: the chapter loader (stages.py),
the pin check and the install's size. Nothing in a chapter or in shared/ imports them."""
