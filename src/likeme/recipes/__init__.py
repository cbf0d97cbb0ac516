"""One file per training task, each reading top to bottom: setup -> train -> evaluate -> save."""
