"""What subscriptions tells the apps built on it, which it does not know.

Each signal is sent with the subscriber (or the event) as a keyword argument; what a
receiver returns is used as said below.
"""

from django.dispatch import Signal

# An ESP reported something about a message that is not about the address (delivered,
# opened, clicked): ``event``, a stored DeliveryEvent with its message id.
message_reported = Signal()

# A subscriber's data export is being put together: a receiver returns a dict of the
# export's sections it holds (``subscriber``).
export_collecting = Signal()

# The message ids of what was mailed to ``subscriber``: a receiver returns a queryset of
# ``message_id`` values, so that their delivery events are exported and deleted with them.
message_ids_collecting = Signal()
