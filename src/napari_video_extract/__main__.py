"""``python -m napari_video_extract`` runs the command-line interface."""

import sys

from napari_video_extract.cli import main

sys.exit(main())
