#!/usr/bin/env python3
# Adds to crates/retail-workspace-hack every dependency whose features differ between a per-crate
# build and the workspace build (run from the repo root after changing dependencies; run twice).
import re,glob,subprocess
def tree(sel):
    out=subprocess.run(['cargo','tree']+sel+['-e','normal','-f','{p} [{f}]','--prefix','none'],capture_output=True,text=True,cwd='.').stdout
    d={}
    for l in out.splitlines():
        m=re.match(r'(\S+) v(\S+)( \(.*?\))? \[(.*)\]',l.strip())
        if not m or 'proc-macro' in (m.group(3) or ''): continue
        d.setdefault((m.group(1),m.group(2)),set()).update(x for x in m.group(4).split(',') if x)
    return d
ws=tree(['--workspace'])
bad={}
for c in ['retail-core','retail-sim','retail-bus','retail-lake','retail-warehouse','retail-stream','retail-server','retail']:
    for k,v in tree(['-p',c]).items():
        if not k[0].startswith('retail') and ws.get(k,set())!=v: bad[k]=ws[k]
p='crates/retail-workspace-hack/Cargo.toml'
s=open(p).read()
added=0
for k,v in sorted(bad.items()):
    if k[0]=='syn' or re.search(r'^'+re.escape(k[0])+r' = ',s,re.M): continue
    feats=[f for f in sorted(v) if f!='default']
    s+=f'{k[0]} = {{ version = "{k[1]}", default-features = {str("default" in v).lower()}, features = {feats!r} }}\n'.replace("'",'"')
    added+=1
open(p,'w').write(s)
print("bad",sorted(bad),"added",added)
