"""Code shared by the RheumTexture and SjogrenUS modules: image I/O, MRML scenes,
statistics and bundle running. Nothing here touches Qt."""
