from django.db import models


class Participant(models.Model):
    """A contact taking part in a conversation, and how far it got."""

    contact = models.CharField(max_length=64, unique=True)  # the backend sender id, +<wa_id>
    name = models.CharField(max_length=200, blank=True)
    conversation = models.CharField(max_length=64)
    position = models.PositiveIntegerField(default=0)  # comments voted on so far


class Vote(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="votes")
    conversation = models.CharField(max_length=64)
    comment = models.PositiveIntegerField()
    choice = models.SmallIntegerField()  # 1 agree, -1 disagree, 0 skip
    created_at = models.DateTimeField(auto_now_add=True)
