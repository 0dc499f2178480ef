"""A tiny test service: HTTP over TCP answering "<hostname> <client-ip>", or a UDP echo that
answers "<hostname> <client-ip> <payload>". Used by integration tests inside test hosts only.

usage: echo_server.py tcp|udp BIND_ADDRESS PORT
"""

import http.server
import socket
import socketserver
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = ("%s %s\n" % (socket.gethostname(), self.client_address[0])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    proto, bind, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    if proto == "tcp":
        Server.address_family = family
        Server((bind, port), Handler).serve_forever()
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((bind, port))
    while True:
        data, peer = sock.recvfrom(2048)
        sock.sendto(("%s %s %s" % (socket.gethostname(), peer[0], data.decode(errors="replace"))).encode(), peer)


if __name__ == "__main__":
    main()
