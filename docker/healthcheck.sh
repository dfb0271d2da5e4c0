#!/bin/sh
# Docker HEALTHCHECK: the head answers GET /health; a render node accepts ssh connections.
case ${DRENDER_ROLE:-head} in
head) exec curl -fsS -m 4 -o /dev/null "http://localhost:${DRENDER_HTTP_PORT:-4000}/health" ;;
*) exec timeout 4 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "${DRENDER_SSH_PORT:-2222}" ;;
esac
