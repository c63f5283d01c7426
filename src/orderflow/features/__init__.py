"""Order-flow features: OFI (multi-level), CVD, microstructure, technical, time and regime features, the
registry that documents them, triple-barrier labels and feature selection."""

from orderflow.features.ofi import BucketOFI, OFIImpact, bucket_ofi, ofi_per_event, ofi_price_impact

__all__ = ["BucketOFI", "OFIImpact", "bucket_ofi", "ofi_per_event", "ofi_price_impact"]
