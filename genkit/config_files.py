"""Where genkit's own config files live (a leaf: it imports nothing of genkit's)."""

from pathlib import Path

# genkit/configs links to the top-level configs/ folder and ships inside the package
CONFIG_DIR = Path(__file__).parent / "configs"
