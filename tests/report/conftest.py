import sys
from pathlib import Path

# The helpers (synthetic run writer, CDP client) live next to the tests, not in the package.
sys.path.insert(0, str(Path(__file__).parent))
