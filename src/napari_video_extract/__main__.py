"""``python -m napari_video_extract`` runs the command-line interface."""

import sys

from napari_video_extract.cli import console_main

sys.exit(console_main())
