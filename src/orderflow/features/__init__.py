"""Order-flow features: OFI (multi-level), and later CVD, microstructure, technical and time features."""

from orderflow.features.ofi import BucketOFI, OFIImpact, bucket_ofi, ofi_per_event, ofi_price_impact

__all__ = ["BucketOFI", "OFIImpact", "bucket_ofi", "ofi_per_event", "ofi_price_impact"]
