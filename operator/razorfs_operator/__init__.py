"""The RazorFS operator: reconciles RazorVolume objects into a PersistentVolume and claim, checks the
S3 location they name, guards their deletion and reports node and usage state in their status.
Run it with `razorfs-operator` or `kopf run -m razorfs_operator.handlers`."""
