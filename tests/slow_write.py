"""`python tests/slow_write.py SECONDS ARGS...`: `cnnzoo ARGS` with the file writer patched to
pause half-way through each .safetensors write, so a test can kill a real process while a
checkpoint is torn on disk (the hook lives here, not in the package)."""

from __future__ import annotations

import sys
import time

from cnnzoo.artifacts import files


def main() -> int:
    delay = float(sys.argv[1])
    real = files.write_bytes_to

    def slow(f, data: bytes, path) -> None:
        if path.suffix != ".safetensors":
            return real(f, data, path)
        half = len(data) // 2
        f.write(data[:half])
        f.flush()
        time.sleep(delay)
        f.write(data[half:])

    files.write_bytes_to = slow
    from cnnzoo.cli.main import main as cnnzoo

    return cnnzoo(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
