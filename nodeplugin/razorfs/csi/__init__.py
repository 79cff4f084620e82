"""The CSI plugin `razorfs-node`: Identity, Node and Controller servers over grpc.aio, the
supervisor that starts, re-adopts and restarts one mount daemon per staged volume, and the
NodeAdmin server the operator asks for per-node volume state."""
