"""Object stores (S3 and a local directory) behind one synchronous interface with typed errors."""
