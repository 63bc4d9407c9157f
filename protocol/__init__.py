"""The PPX wire protocol: schema, message objects, codec and ZeroMQ transport."""
