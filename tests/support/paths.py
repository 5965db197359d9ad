"""Where things are, for tests that read the project's files or run its commands."""

from pathlib import Path

# The project's root: manage.py, the packages, docker-compose.yml, samples/, var/.
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
