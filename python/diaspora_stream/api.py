"""The Diaspora Stream API: the names of the C++ reference's ``diaspora_stream.api``.

Beyond the reference: ``Producer.push_many``, ``Producer.end_step``, ``Producer.end_of_stream``,
``Consumer.pull_many``, ``Consumer.events(timeout_ms=...)``, ``Consumer.wait_step``, consumer
``start`` positions and ``liveness_timeout_ms``, producer ``max_buffered_bytes``/``on_full``,
and the ``InvalidArgument`` and ``ProducerLost`` exceptions (both subclasses of ``Exception``).
"""

from . import _native

Exception = _native.Exception
ClientException = _native.Exception
InvalidArgument = _native.InvalidArgument
ProducerLost = _native.ProducerLost
AdaptiveBatchSize = _native.AdaptiveBatchSize
NoMoreEvents = _native.NoMoreEvents
Driver = _native.Driver
Validator = _native.Validator
ThreadPool = _native.ThreadPool
Ordering = _native.Ordering
Serializer = _native.Serializer
PartitionSelector = _native.PartitionSelector
TopicHandle = _native.TopicHandle
Producer = _native.Producer
Consumer = _native.Consumer
DataDescriptor = _native.DataDescriptor
Event = _native.Event
FutureUint = _native.FutureUint
FutureEvent = _native.FutureEvent
FutureFlushed = _native.FutureFlushed
FutureIds = _native.FutureIds
builtin_drivers = _native.builtin_drivers


def FullDataSelector(metadata, descriptor):
    """Data selector that selects the whole data (recognised natively: no Python call)."""
    return descriptor


FullDataSelector.__diaspora_builtin__ = "full"


def ByteArrayAllocator(metadata, descriptor):
    """Data allocator that reads the data into a new bytearray (the event's data is then
    ``[bytearray]``)."""
    return [bytearray(descriptor.size)]


__all__ = [
    "AdaptiveBatchSize",
    "ByteArrayAllocator",
    "ClientException",
    "Consumer",
    "DataDescriptor",
    "Driver",
    "Event",
    "Exception",
    "FullDataSelector",
    "FutureEvent",
    "FutureFlushed",
    "FutureIds",
    "FutureUint",
    "InvalidArgument",
    "NoMoreEvents",
    "Ordering",
    "PartitionSelector",
    "Producer",
    "ProducerLost",
    "Serializer",
    "ThreadPool",
    "TopicHandle",
    "Validator",
    "builtin_drivers",
]
