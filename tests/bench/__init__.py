"""The benchmark suite (issue 7): RazorFS against rclone, s3fs, raw boto3 and a local directory.

Run with `python -m tests.bench [--quick]`. Every system runs the same workloads on one SeaweedFS
server, in alternating runs, and results are reported as medians and paired RazorFS/peer ratios
because this machine is shared and absolute times do not carry over.
"""
