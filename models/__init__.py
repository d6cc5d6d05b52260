"""vrec's tables. Importing this package registers every table on ``Base.metadata``."""

from models.base import Base
from models.core import Attempt, Batch, Image, Item, Job, ProviderState, Result
from models.readings import CarModelCandidateRow, PlateReadingRow, VehicleLicense
from models.schedules import Schedule, ScheduleFile, ScheduleRun, ScheduleSource

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
    "Schedule",
    "ScheduleFile",
    "ScheduleRun",
    "ScheduleSource",
    "VehicleLicense",
]
