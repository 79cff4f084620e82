"""`make demo` (first cut): starts a local SeaweedFS S3 server on loopback with a bucket and
prints how to reach it, then keeps it running until Ctrl-C or --seconds."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .s3server import start_seaweedfs


def main() -> None:
    parser = argparse.ArgumentParser(description="RazorFS demo: a local S3 server")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until Ctrl-C)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="razorfs-demo-"))
    server = start_seaweedfs(workdir)
    try:
        server.client().create_bucket(Bucket="razorfs-demo")
        print("SeaweedFS S3 is running on loopback:")
        for name, value in server.env().items():
            print(f"  export {name}={value}")
        print("  bucket: razorfs-demo")
        print("Press Ctrl-C to stop.", flush=True)
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
