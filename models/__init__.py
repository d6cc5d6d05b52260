"""vrec's tables. Importing this package registers every table on ``Base.metadata``."""

from models.base import Base
from models.core import Attempt, Batch, Image, Item, Job, ProviderState, Result
from models.readings import CarModelCandidateRow, PlateReadingRow, VehicleLicense

__all__ = [
    "Attempt",
    "Base",
    "Batch",
    "CarModelCandidateRow",
    "Image",
    "Item",
    "Job",
    "PlateReadingRow",
    "ProviderState",
    "Result",
    "VehicleLicense",
]
