"""RazorFS node side: object stores, the local cache tier, the FUSE filesystem, the mount daemon
and the CSI plugin. Layers import downward only: store <- cache <- fs <- mount <- csi."""

__version__ = "0.1.0"
