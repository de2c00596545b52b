// TURN relay fast path: UDP sockets read with recvmmsg from libuv's loop, and ChannelData relayed
// both ways in C for routes the JavaScript server installed (a live channel binding with its
// permission, on a UDP client). Everything else goes up to JavaScript as (buffer, address, port).
// Why: Node's dgram costs ~10 us of CPU per datagram in its send path alone (docs/turn.md); a relay
// sends one datagram per packet, so a relay on dgram cannot reach coturn's CPU per packet.
// One instance per process (static state); the JavaScript side loads it on the main thread only.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define BATCH 64
#define MAX_DATAGRAM 65536
// Reads per wakeup before yielding to the rest of the loop (timers, other sockets).
#define ROUNDS_PER_WAKEUP 8
#define TABLE_BITS 16

typedef struct {
  int32_t sock;
  uint16_t port;
  uint16_t channel;
  uint8_t addr[16];
} route_key_t;

// Per listener, so that two servers in one process count their own.
enum { C_TO_PEER_PACKETS, C_TO_PEER_BYTES, C_TO_CLIENT_PACKETS, C_TO_CLIENT_BYTES, C_BANDWIDTH, C_QUEUE_FULL, C_COUNT };

typedef struct bucket {
  double per_ms, burst, tokens, last;
  int refs;
} bucket_t;

typedef struct route route_t;

typedef struct sock {
  int id, fd, family, closing, listener;
  double counters[C_COUNT];
  uv_poll_t poll;
  napi_ref on_message;
  route_t *routes; // routes whose relay is this socket (list through next_relay)
} sock_t;

struct route {
  route_key_t client_key, peer_key;
  sock_t *listener, *relay;
  struct sockaddr_storage client, peer;
  socklen_t client_len, peer_len;
  uint16_t channel;
  double valid_until;
  bucket_t *alloc_bucket, *user_bucket;
  route_t *next_client, *next_peer, *next_relay;
};


static napi_env the_env;
static napi_async_context async_context;
static sock_t **socks;
static int socks_cap;
static bucket_t **buckets;
static int buckets_cap;
static route_t *client_table[1 << TABLE_BITS], *peer_table[1 << TABLE_BITS];
static uint32_t max_channel_data = 65535, max_to_client = 65535;

// Receive and send batches: one set, reused (a callback never re-enters another socket's read).
static uint8_t in_buf[BATCH][MAX_DATAGRAM];
static struct mmsghdr in_msg[BATCH];
static struct iovec in_iov[BATCH];
static struct sockaddr_storage in_src[BATCH];
static struct mmsghdr out_msg[BATCH];
static struct iovec out_iov[BATCH][2];
static uint8_t out_header[BATCH][4];
static int out_fd[BATCH];
static sock_t *out_owner[BATCH]; // the listener whose counters a lost datagram goes to
static int out_count;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1000.0 + t.tv_nsec / 1e6;
}

static uint32_t hash_key(const route_key_t *k) {
  const uint8_t *p = (const uint8_t *)k;
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < sizeof *k; i++) h = (h ^ p[i]) * 16777619u;
  return h >> (32 - TABLE_BITS);
}

static void make_key(route_key_t *k, int sock, const struct sockaddr_storage *a, uint16_t channel) {
  memset(k, 0, sizeof *k);
  k->sock = sock;
  k->channel = channel;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
    memcpy(k->addr, &v4->sin_addr, 4);
    k->port = v4->sin_port;
  } else {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)a;
    memcpy(k->addr, &v6->sin6_addr, 16);
    k->port = v6->sin6_port;
  }
}

static route_t *find_client(const route_key_t *k) {
  for (route_t *r = client_table[hash_key(k)]; r; r = r->next_client)
    if (!memcmp(&r->client_key, k, sizeof *k)) return r;
  return NULL;
}

static route_t *find_peer(const route_key_t *k) {
  for (route_t *r = peer_table[hash_key(k)]; r; r = r->next_peer)
    if (!memcmp(&r->peer_key, k, sizeof *k)) return r;
  return NULL;
}

static void bucket_release(bucket_t *b) {
  if (b && --b->refs == 0) free(b);
}

static void route_free(route_t *route) {
  route_t **p;
  for (p = &client_table[hash_key(&route->client_key)]; *p != route; p = &(*p)->next_client) {}
  *p = route->next_client;
  for (p = &peer_table[hash_key(&route->peer_key)]; *p != route; p = &(*p)->next_peer) {}
  *p = route->next_peer;
  for (p = &route->relay->routes; *p != route; p = &(*p)->next_relay) {}
  *p = route->next_relay;
  bucket_release(route->alloc_bucket);
  bucket_release(route->user_bucket);
  free(route);
}

// Refills, then takes `bytes` from both buckets only if both have them (as the JavaScript server).
static int within_bandwidth(bucket_t *a, bucket_t *b, double bytes, double now) {
  bucket_t *both[2] = {a, b};
  for (int i = 0; i < 2; i++) {
    bucket_t *x = both[i];
    if (!x) continue;
    double tokens = x->tokens + (now - x->last) * x->per_ms;
    x->tokens = tokens < x->burst ? tokens : x->burst;
    x->last = now;
    if (x->tokens < bytes) return 0;
  }
  if (a) a->tokens -= bytes;
  if (b) b->tokens -= bytes;
  return 1;
}

static void flush_out(void) {
  int start = 0;
  while (start < out_count) {
    int end = start + 1;
    while (end < out_count && out_fd[end] == out_fd[start]) end++;
    int done = 0;
    while (done < end - start) {
      int sent = sendmmsg(out_fd[start], out_msg + start + done, end - start - done, MSG_DONTWAIT);
      if (sent > 0) {
        done += sent;
      } else if (sent < 0 && errno == EINTR) {
        continue;
      } else {
        // Full send buffer (EAGAIN/ENOBUFS) or a failed datagram: that one is lost, as UDP allows.
        out_owner[start + done]->counters[C_QUEUE_FULL]++;
        done++;
      }
    }
    start = end;
  }
  out_count = 0;
}

static void queue_out(int fd, void *header, size_t header_len, void *data, size_t data_len,
                      struct sockaddr_storage *to, socklen_t to_len, sock_t *owner) {
  if (out_count == BATCH) flush_out();
  int i = out_count++;
  int parts = 0;
  if (header_len) {
    out_iov[i][parts].iov_base = header;
    out_iov[i][parts++].iov_len = header_len;
  }
  out_iov[i][parts].iov_base = data;
  out_iov[i][parts++].iov_len = data_len;
  memset(&out_msg[i].msg_hdr, 0, sizeof out_msg[i].msg_hdr);
  out_msg[i].msg_hdr.msg_iov = out_iov[i];
  out_msg[i].msg_hdr.msg_iovlen = parts;
  out_msg[i].msg_hdr.msg_name = to;
  out_msg[i].msg_hdr.msg_namelen = to_len;
  out_fd[i] = fd;
  out_owner[i] = owner;
}

// 1 when the fast path took (relayed or dropped) the datagram, 0 when JavaScript must see it.
static int fast_path(sock_t *s, int i, double now) {
  uint8_t *buf = in_buf[i];
  uint32_t len = in_msg[i].msg_len;
  route_key_t k;
  if (s->listener) {
    // A listener: ChannelData from a client with a route.
    if (len < 4 || buf[0] < 0x40 || buf[0] > 0x7f) return 0;
    uint16_t channel = (uint16_t)(buf[0] << 8 | buf[1]);
    uint32_t data_len = (uint32_t)(buf[2] << 8 | buf[3]);
    if (data_len + 4 > len || len > max_channel_data) return 0;
    make_key(&k, s->id, &in_src[i], channel);
    route_t *r = find_client(&k);
    if (!r || r->valid_until <= now || r->relay->closing) return 0;
    if (!within_bandwidth(r->alloc_bucket, r->user_bucket, data_len, now)) {
      s->counters[C_BANDWIDTH]++;
      return 1;
    }
    queue_out(r->relay->fd, NULL, 0, buf + 4, data_len, &r->peer, r->peer_len, s);
    s->counters[C_TO_PEER_PACKETS]++;
    s->counters[C_TO_PEER_BYTES] += data_len;
    return 1;
  }
  // A relay socket: a datagram from a peer with a channel.
  if (len > max_to_client) return 0;
  make_key(&k, s->id, &in_src[i], 0);
  route_t *r = find_peer(&k);
  if (!r || r->valid_until <= now || r->listener->closing) return 0;
  if (!within_bandwidth(r->alloc_bucket, r->user_bucket, len, now)) {
    r->listener->counters[C_BANDWIDTH]++;
    return 1;
  }
  if (out_count == BATCH) flush_out();
  uint8_t *h = out_header[out_count];
  h[0] = r->channel >> 8;
  h[1] = r->channel & 0xff;
  h[2] = len >> 8;
  h[3] = len & 0xff;
  queue_out(r->listener->fd, h, 4, buf, len, &r->client, r->client_len, r->listener);
  r->listener->counters[C_TO_CLIENT_PACKETS]++;
  r->listener->counters[C_TO_CLIENT_BYTES] += len;
  return 1;
}

static void to_javascript(sock_t *s, int i) {
  napi_env env = the_env;
  napi_value callback, recv, argv[3], result;
  char text[INET6_ADDRSTRLEN];
  uint16_t port;
  if (in_src[i].ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&in_src[i];
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&in_src[i];
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
  }
  if (napi_get_reference_value(env, s->on_message, &callback) != napi_ok || !callback) return;
  napi_create_buffer_copy(env, in_msg[i].msg_len, in_buf[i], NULL, &argv[0]);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &argv[1]);
  napi_create_uint32(env, port, &argv[2]);
  napi_get_global(env, &recv); // napi_make_callback needs an object as `this`
  if (napi_make_callback(env, async_context, recv, callback, 3, argv, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  sock_t *s = handle->data;
  (void)events;
  if (status < 0 || s->closing) return;
  napi_handle_scope scope;
  napi_open_handle_scope(the_env, &scope);
  for (int round = 0; round < ROUNDS_PER_WAKEUP && !s->closing; round++) {
    for (int i = 0; i < BATCH; i++) {
      in_iov[i].iov_base = in_buf[i];
      in_iov[i].iov_len = MAX_DATAGRAM;
      memset(&in_msg[i].msg_hdr, 0, sizeof in_msg[i].msg_hdr);
      in_msg[i].msg_hdr.msg_iov = &in_iov[i];
      in_msg[i].msg_hdr.msg_iovlen = 1;
      in_msg[i].msg_hdr.msg_name = &in_src[i];
      in_msg[i].msg_hdr.msg_namelen = sizeof in_src[i];
    }
    int n = recvmmsg(s->fd, in_msg, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) break;
    double now = now_ms();
    for (int i = 0; i < n && !s->closing; i++) {
      if (in_msg[i].msg_hdr.msg_flags & MSG_TRUNC) continue;
      if (fast_path(s, i, now)) continue;
      // JavaScript may send or change routes; what is queued leaves first, in order.
      flush_out();
      to_javascript(s, i);
    }
    flush_out();
    if (n < BATCH) break;
  }
  napi_close_handle_scope(the_env, scope);
}

// ---- JavaScript API ----------------------------------------------------------------------------

#define CHECK(call) \
  do { \
    if ((call) != napi_ok) { \
      napi_throw_error(env, NULL, "fastpath: bad arguments"); \
      return NULL; \
    } \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  napi_value message, code, error;
  char text[160];
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  const char *name = err == EADDRINUSE ? "EADDRINUSE" : err == EACCES ? "EACCES" : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : "EFASTPATH";
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, message, &error);
  napi_set_named_property(env, error, "code", code);
  napi_throw(env, error);
  return NULL;
}

static int parse_address(napi_env env, napi_value address, uint32_t port, int family,
                         struct sockaddr_storage *out, socklen_t *len) {
  char text[INET6_ADDRSTRLEN + 1];
  size_t n;
  if (napi_get_value_string_utf8(env, address, text, sizeof text, &n) != napi_ok || port > 65535) return 0;
  memset(out, 0, sizeof *out);
  if (family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)out;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    *len = sizeof *a;
    return inet_pton(AF_INET, text, &a->sin_addr) == 1;
  }
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  *len = sizeof *a;
  if (inet_pton(AF_INET6, text, &a->sin6_addr) == 1) return 1;
  // An IPv4 peer on an IPv6 socket, as dgram's send accepts it.
  struct in_addr v4;
  if (inet_pton(AF_INET, text, &v4) != 1) return 0;
  memset(&a->sin6_addr, 0, 16);
  a->sin6_addr.s6_addr[10] = a->sin6_addr.s6_addr[11] = 0xff;
  memcpy(&a->sin6_addr.s6_addr[12], &v4, 4);
  return 1;
}

static sock_t *sock_arg(napi_env env, napi_value v) {
  int32_t id;
  if (napi_get_value_int32(env, v, &id) != napi_ok || id < 0 || id >= socks_cap || !socks[id] || socks[id]->closing)
    return NULL;
  return socks[id];
}

static bucket_t *bucket_arg(napi_env env, napi_value v) {
  int32_t id;
  if (napi_get_value_int32(env, v, &id) != napi_ok || id < 0 || id >= buckets_cap) return NULL;
  return buckets[id];
}

// open(family 4|6, address, port, bufferBytes, onMessage, listener) -> [id, boundPort]
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  int32_t family_number, buffer_bytes;
  bool listener;
  uint32_t port;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int32(env, argv[0], &family_number));
  CHECK(napi_get_value_uint32(env, argv[2], &port));
  CHECK(napi_get_value_int32(env, argv[3], &buffer_bytes));
  CHECK(napi_get_value_bool(env, argv[5], &listener));
  int family = family_number == 6 ? AF_INET6 : AF_INET;
  struct sockaddr_storage address;
  socklen_t address_len;
  if (!parse_address(env, argv[1], port, family, &address, &address_len)) {
    napi_throw_type_error(env, NULL, "fastpath: invalid bind address");
    return NULL;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (buffer_bytes > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes);
  }
  if (bind(fd, (struct sockaddr *)&address, address_len) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "bind", err);
  }
  struct sockaddr_storage bound;
  socklen_t bound_len = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &bound_len);
  int id = 0;
  while (id < socks_cap && socks[id]) id++;
  if (id == socks_cap) {
    int cap = socks_cap ? socks_cap * 2 : 1024;
    sock_t **grown = realloc(socks, cap * sizeof *socks);
    if (!grown) {
      close(fd);
      return throw_errno(env, "open", ENOMEM);
    }
    memset(grown + socks_cap, 0, (cap - socks_cap) * sizeof *socks);
    socks = grown;
    socks_cap = cap;
  }
  sock_t *s = calloc(1, sizeof *s);
  s->id = id;
  s->fd = fd;
  s->family = family;
  s->listener = listener;
  napi_create_reference(env, argv[4], 1, &s->on_message);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &s->poll, fd);
  s->poll.data = s;
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  socks[id] = s;
  napi_value result, v;
  napi_create_array_with_length(env, 2, &result);
  napi_create_int32(env, id, &v);
  napi_set_element(env, result, 0, v);
  napi_create_uint32(env, ntohs(((struct sockaddr_in *)&bound)->sin_port), &v);
  napi_set_element(env, result, 1, v);
  return result;
}

// send(id, buffer, port, address) -> false when the send buffer is full
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  void *data;
  size_t length;
  uint32_t port;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = sock_arg(env, argv[0]);
  CHECK(napi_get_buffer_info(env, argv[1], &data, &length));
  CHECK(napi_get_value_uint32(env, argv[2], &port));
  struct sockaddr_storage to;
  socklen_t to_len;
  int ok = 0;
  if (s && parse_address(env, argv[3], port, s->family, &to, &to_len)) {
    ssize_t sent;
    do sent = sendto(s->fd, data, length, MSG_DONTWAIT, (struct sockaddr *)&to, to_len);
    while (sent < 0 && errno == EINTR);
    ok = sent >= 0;
  }
  napi_get_boolean(env, ok, &result);
  return result;
}

static void on_closed(uv_handle_t *handle) {
  sock_t *s = handle->data;
  close(s->fd);
  socks[s->id] = NULL;
  free(s);
}

static void sock_close(napi_env env, sock_t *s) {
  while (s->routes) route_free(s->routes);
  // Routes whose listener this is go too (a listener closes only when the server does).
  for (int b = 0; s->listener && b < (1 << TABLE_BITS); b++) {
    route_t *r = client_table[b];
    while (r) {
      route_t *next = r->next_client;
      if (r->listener == s) route_free(r);
      r = next;
    }
  }
  s->closing = 1;
  napi_delete_reference(env, s->on_message);
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_closed);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = sock_arg(env, argv[0]);
  if (s) sock_close(env, s);
  return NULL;
}

// route(listener, clientAddress, clientPort, channel, relay, peerAddress, peerPort, validUntil,
//       allocationBucket, userBucket): installs or replaces the route of a channel.
static napi_value js_route(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  uint32_t client_port, channel, peer_port;
  double valid_until;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *listener = sock_arg(env, argv[0]);
  sock_t *relay = sock_arg(env, argv[4]);
  CHECK(napi_get_value_uint32(env, argv[2], &client_port));
  CHECK(napi_get_value_uint32(env, argv[3], &channel));
  CHECK(napi_get_value_uint32(env, argv[6], &peer_port));
  CHECK(napi_get_value_double(env, argv[7], &valid_until));
  route_t *r = calloc(1, sizeof *r);
  if (!listener || !relay || !listener->listener || relay->listener || channel > 0xffff || !r ||
      !parse_address(env, argv[1], client_port, listener->family, &r->client, &r->client_len) ||
      !parse_address(env, argv[5], peer_port, relay->family, &r->peer, &r->peer_len)) {
    free(r);
    napi_throw_type_error(env, NULL, "fastpath: invalid route");
    return NULL;
  }
  r->listener = listener;
  r->relay = relay;
  r->channel = (uint16_t)channel;
  r->valid_until = valid_until;
  make_key(&r->client_key, listener->id, &r->client, r->channel);
  make_key(&r->peer_key, relay->id, &r->peer, 0);
  route_t *old;
  if ((old = find_client(&r->client_key))) route_free(old);
  if ((old = find_peer(&r->peer_key))) route_free(old);
  r->alloc_bucket = bucket_arg(env, argv[8]);
  r->user_bucket = bucket_arg(env, argv[9]);
  if (r->alloc_bucket) r->alloc_bucket->refs++;
  if (r->user_bucket) r->user_bucket->refs++;
  uint32_t hc = hash_key(&r->client_key), hp = hash_key(&r->peer_key);
  r->next_client = client_table[hc];
  client_table[hc] = r;
  r->next_peer = peer_table[hp];
  peer_table[hp] = r;
  r->next_relay = relay->routes;
  relay->routes = r;
  return NULL;
}

// bucket(bytesPerSecond, burst) -> id
static napi_value js_bucket(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  double rate, burst;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_double(env, argv[0], &rate));
  CHECK(napi_get_value_double(env, argv[1], &burst));
  int id = 0;
  while (id < buckets_cap && buckets[id]) id++;
  if (id == buckets_cap) {
    int cap = buckets_cap ? buckets_cap * 2 : 1024;
    bucket_t **grown = realloc(buckets, cap * sizeof *buckets);
    if (!grown) return throw_errno(env, "bucket", ENOMEM);
    memset(grown + buckets_cap, 0, (cap - buckets_cap) * sizeof *buckets);
    buckets = grown;
    buckets_cap = cap;
  }
  bucket_t *b = calloc(1, sizeof *b);
  b->per_ms = rate / 1000;
  b->burst = b->tokens = burst;
  b->last = now_ms();
  b->refs = 1;
  buckets[id] = b;
  napi_create_int32(env, id, &result);
  return result;
}

// spend(allocationBucket, userBucket, bytes) -> whether both had the bytes (then taken from both)
static napi_value js_spend(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  double bytes;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_double(env, argv[2], &bytes));
  int ok = within_bandwidth(bucket_arg(env, argv[0]), bucket_arg(env, argv[1]), bytes, now_ms());
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value js_free_bucket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t id;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int32(env, argv[0], &id));
  if (id >= 0 && id < buckets_cap && buckets[id]) {
    bucket_release(buckets[id]);
    buckets[id] = NULL;
  }
  return NULL;
}

// limits(maxChannelDataBytes, maxToClientBytes): larger datagrams go to JavaScript (which drops them).
static napi_value js_limits(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_uint32(env, argv[0], &max_channel_data));
  CHECK(napi_get_value_uint32(env, argv[1], &max_to_client));
  return NULL;
}

// counters(listener) -> [toPeerPackets, toPeerBytes, toClientPackets, toClientBytes, bandwidth,
// queueFull] of that listener's routes, each since the previous call.
static napi_value js_counters(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result, v;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = sock_arg(env, argv[0]);
  napi_create_array_with_length(env, C_COUNT, &result);
  for (int i = 0; i < C_COUNT; i++) {
    napi_create_double(env, s ? s->counters[i] : 0, &v);
    napi_set_element(env, result, i, v);
    if (s) s->counters[i] = 0;
  }
  return result;
}

// Milliseconds on the clock the fast path checks `validUntil` against (the wall clock, as Date.now).
static napi_value js_now(napi_env env, napi_callback_info info) {
  napi_value result;
  (void)info;
  napi_create_double(env, now_ms(), &result);
  return result;
}

static void cleanup(void *arg) {
  (void)arg;
  for (int i = 0; i < socks_cap; i++)
    if (socks[i] && !socks[i]->closing) sock_close(the_env, socks[i]);
}

NAPI_MODULE_INIT() {
  if (the_env) {
    napi_throw_error(env, NULL, "fastpath: loaded twice in one process (main thread only)");
    return NULL;
  }
  the_env = env;
  napi_value name;
  napi_create_string_utf8(env, "turn-fastpath", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &async_context);
  napi_add_env_cleanup_hook(env, cleanup, NULL);
  struct {
    const char *name;
    napi_callback fn;
  } functions[] = {{"open", js_open},     {"send", js_send},        {"close", js_close},
                   {"route", js_route},   {"bucket", js_bucket},    {"spend", js_spend},
                   {"freeBucket", js_free_bucket}, {"limits", js_limits}, {"counters", js_counters},
                   {"now", js_now}};
  for (size_t i = 0; i < sizeof functions / sizeof *functions; i++) {
    napi_value fn;
    napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn);
    napi_set_named_property(env, exports, functions[i].name, fn);
  }
  return exports;
}
