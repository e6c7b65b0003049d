#!/usr/bin/env bash
# The integration suites again, on a second engine: AWS's own DynamoDB Local (the jar inside
# the npm package amplify-dynamodb-simulator, run with Java 17) instead of dynalite, so that
# nothing leans on one emulator's quirks. Kept out of `npm install` (it is 350 MB); cached in
# $DYNAMODB_LOCAL_DIR. Usage: npm run test:dynamodb-local
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${DYNAMODB_LOCAL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/logrelay-dynamodb-local}"
emu="$dir/node_modules/amplify-dynamodb-simulator/emulator"
if [ ! -f "$emu/DynamoDBLocal.jar" ]; then
  echo "installing DynamoDB Local into $dir"
  mkdir -p "$dir"
  (cd "$dir" && echo '{"private": true}' > package.json && npm install --no-audit --no-fund amplify-dynamodb-simulator@2.9.30 > install.log 2>&1)
fi
if ! command -v java > /dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless
fi

port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
log=$(mktemp)
(cd "$emu" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -port "$port") > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2> /dev/null || true' EXIT
node -e '
  const net = require("net"); const port = Number(process.argv[1]); const until = Date.now() + 60000;
  (function poll() {
    const c = net.connect(port, "127.0.0.1", () => { c.end(); process.exit(0); });
    c.on("error", () => Date.now() > until ? (console.error("DynamoDB Local did not start"), process.exit(1)) : setTimeout(poll, 250));
  })();
' "$port" || { cat "$log"; exit 1; }

echo "DynamoDB Local on 127.0.0.1:$port"
LOGRELAY_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$port" npx vitest run test/integration
