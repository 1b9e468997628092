#!/bin/sh
# vendor.sh copies the dashboard's browser libraries from Debian packages into
# static/vendor/, with their copyright files. The result is committed: the
# build embeds it and needs neither this script nor the packages.
#
#   libjs-vue        -> vue.min.js (Vue 2.6, full build with the template compiler)
#   libjs-bootstrap5 -> bootstrap.min.css, bootstrap.bundle.min.js
#   libjs-chart.js   -> chart.min.js (Chart.js 3.9, UMD)
#   libjs-xterm      -> xterm.css; Debian's /usr/share/javascript/xterm/xterm.js is
#                       a broken stub (it require()s ./public/Terminal), so
#   node-xterm       -> xterm.js is bundled here from its CommonJS lib/ with a
#                       tiny require() shim, exposing window.Terminal (xterm 3.8).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/static/vendor"
pkgs="libjs-vue libjs-bootstrap5 libjs-chart.js libjs-xterm node-xterm"

missing=""
for p in $pkgs; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
	apt-get install -y --no-install-recommends $missing
fi

# find_file PKG NAME prints the path of the file NAME shipped by PKG.
find_file() {
	f=$(dpkg -L "$1" | grep -E "/$2\$" | head -n1)
	[ -n "$f" ] || { echo "vendor.sh: $1 ships no $2" >&2; exit 1; }
	echo "$f"
}

rm -rf "$out"
mkdir -p "$out/licenses"
cp "$(find_file libjs-vue vue.min.js)" "$out/vue.min.js"
cp "$(find_file libjs-bootstrap5 css/bootstrap.min.css)" "$out/bootstrap.min.css"
cp "$(find_file libjs-bootstrap5 js/bootstrap.bundle.min.js)" "$out/bootstrap.bundle.min.js"
cp "$(find_file libjs-chart.js chart.min.js)" "$out/chart.min.js"
cp "$(find_file libjs-xterm xterm.css)" "$out/xterm.css"
# The CSS files point at source maps that are not shipped: drop the comment so
# browsers do not ask for them.
sed -i '/sourceMappingURL/d' "$out/bootstrap.min.css" "$out/bootstrap.bundle.min.js"

# xterm.js: every non-test module of node-xterm's lib/ wrapped in a function,
# resolved by a small require().
lib=$(dirname "$(find_file node-xterm lib/xterm.js)")
{
	echo "/* xterm.js 3.8 (MIT, see licenses/node-xterm.copyright), bundled by ops/dashboard/vendor.sh from Debian's node-xterm */"
	echo "(function(){var defs={},cache={};"
	(cd "$lib" && find . -name '*.js' ! -name '*.test.js' ! -path './addons/*' | sort) | while read -r f; do
		name=${f#./}
		name=${name%.js}
		printf 'defs[%s]=function(exports,require,module){\n' "\"$name\""
		sed '/sourceMappingURL/d' "$lib/$f"
		printf '\n};\n'
	done
	cat <<'JS'
function norm(base, rel){var parts=base.split('/');parts.pop();rel.split('/').forEach(function(p){if(p==='..')parts.pop();else if(p!=='.')parts.push(p);});return parts.join('/');}
function load(name){if(cache[name])return cache[name].exports;if(!defs[name]&&defs[name+'/index'])name=name+'/index';var d=defs[name];if(!d)throw new Error('xterm bundle: no module '+name);var m={exports:{}};cache[name]=m;d.call(m.exports,m.exports,function(r){return load(norm(name,r));},m);return m.exports;}
window.Terminal=load('xterm');})();
JS
} >"$out/xterm.js"

for p in $pkgs; do
	cp "/usr/share/doc/$p/copyright" "$out/licenses/$p.copyright"
done
echo "vendored into $out:"
ls -l "$out"
