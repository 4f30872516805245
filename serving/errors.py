"""The error a request to the development server fails with: a gRPC status code and a message.

The gRPC server answers with the code and message; the REST API maps the code
to TF Serving's HTTP status. A bad request fails alone: the server keeps
serving the others.

Example:

>>> import grpc
>>> str(invalid("audio_bytes has 0 rows"))
'INVALID_ARGUMENT: audio_bytes has 0 rows'
>>> not_found("no model 'x'").code == grpc.StatusCode.NOT_FOUND
True
"""

import grpc


class ServingError(Exception):
    """A request that fails with a gRPC status code (HTTP status for REST)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self):
        return f"{self.code.name}: {self.message}"


def invalid(message):
    """`INVALID_ARGUMENT` (HTTP 400): the request itself is wrong."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message):
    """`NOT_FOUND` (HTTP 404): no such model, version or label."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)
