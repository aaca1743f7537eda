"""Workers: long-running loops beside the server (threads or processes of their own).

They sit above the service layer, as the server does: they act through service modules and
write no SQL of their own (the webhook dispatcher claims and records through
``covex.service.outbox``), and nothing below them imports them.
"""
