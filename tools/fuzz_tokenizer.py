#!/usr/bin/env python3
"""fuzz_tokenizer.py — development fuzz test (not in `make test`): random captions (entities, special
tokens, Unicode from many scripts, invalid UTF-8 bytes; no '\n') through `build/clipmod tokenize --stdin`
against tools/ref_tokenizer.py (needs the `regex` module). Texts holding code points unassigned in
Python's Unicode 14 are skipped (Unicode-version differences, see docs/tokenizer.md).
    python3 tools/fuzz_tokenizer.py SEED COUNT        (from the repository root)
"""
import random, sys, json, subprocess, html.entities, unicodedata
sys.path.insert(0,'tools')
from ref_tokenizer import Tok
t=Tok('../shared/vocab/bpe_simple_vocab_16e6.txt.gz')
R=random.Random(int(sys.argv[1]) if len(sys.argv)>1 else 1)
names=list(html.entities.html5)
pieces=["a","photo","of","the","cat","dog","'s","'S","'ll","n't","<end_of_text>","<START_OF_TEXT>","<|endoftext|>","&amp;","&","#","&#","&#x","&#12","&#x1F600;","&#150","&#0","&#xD800;",
 ";"," ","  ","\t","\r","\x0b","\x0c","\u00a0","\u3000","\u200b","\ufeff","\u0345","\u0301","\u0130","\u03a3","ΟΔΟΣ","İstanbul","ß","ẞ","ﬁ","ǅ","K","Å","ſ","'ſ","ı","😀","👍🏽","🏳️‍🌈","日本語","한국어","ﾊﾝ","١٢٣","①","Ⅻ","½","²","１２","ｆｕｌｌ","\u0085","\u2028","\x1c","\x1f","\x00","\x7f","\ufffd","\uffff","\U0010ffff","\ue000","\u00ad","...","!!!","?!","--","(",")","\"","“","”","’","123","2020","x"*30,"é","e\u0301","Ελληνικά","русский","עברית","العربية","हिन्दी","ไทย"]
def rnd():
    k=R.randint(0,25); out=[]
    for _ in range(k):
        r=R.random()
        if r<0.6: out.append(R.choice(pieces))
        elif r<0.75: out.append('&'+R.choice(names))
        elif r<0.8: out.append(chr(R.choice([R.randint(0x20,0x7e),R.randint(0xa0,0x2fff),R.randint(0x3000,0xd7ff),R.randint(0xe000,0x10ffff)])))
        else: out.append(R.choice([" ",""," "]))
    s=''.join(out).replace('\n',' ')
    b=s.encode('utf-8','surrogatepass')
    if R.random()<0.2:
        b=bytearray(b)
        for _ in range(R.randint(1,3)):
            b.insert(R.randint(0,len(b)), R.randint(0x80,0xff))
        b=bytes(b).replace(b'\n',b' ')
    return b
N=int(sys.argv[2]) if len(sys.argv)>2 else 3000
texts=[rnd() for _ in range(N)]
inp=b'\n'.join(texts)+b'\n'
p=subprocess.run(['build/clipmod','tokenize','--vocab','../shared/vocab/bpe_simple_vocab_16e6.txt.gz','--stdin'],input=inp,capture_output=True)
got=p.stdout.decode().splitlines()
assert len(got)==N,(len(got),p.stderr)
bad=0
for b,g in zip(texts,got):
    w=t(b.decode('utf-8','replace'))
    import unicodedata
    if json.loads(g)!=w:
        d=b.decode('utf-8','replace')
        if any(unicodedata.category(c)=='Cn' and not (0xfdd0<=ord(c)<=0xfdef or (ord(c)&0xfffe)==0xfffe) for c in d): continue
        bad+=1
        if bad<5: g=json.loads(g); k=next(i for i in range(77) if g[i]!=w[i]); print('MISMATCH',b,'\n at',k,' got',g[k-3:k+5],'\nwant',w[k-3:k+5])
print('fuzz',N,'bad',bad)
