(()=>{
let D=document,N="tracker-progress",O=new URL(D.currentScript.src).origin,I=Number.isInteger,
C=`:host{display:block!important;height:auto!important;padding:0!important;border:0!important}
.w{all:initial;display:block;box-sizing:border-box;height:92px;overflow:hidden;padding:12px 16px;border:1px solid #ddd;border-radius:10px;background:#fff;color:#555;font:13px/16px system-ui;white-space:nowrap}
.x{height:140px}
.s{height:66px;padding:0;border:0}
.c{display:none}
.t,.x .c{display:flex;justify-content:space-between;align-items:center;gap:12px;height:24px}
.a,.c span{overflow:hidden;text-overflow:ellipsis;color:#222;font-size:14px}
.c span{white-space:normal;max-height:32px}
b{font-size:18px}
.b{position:relative;height:12px;margin:8px 0 6px;overflow:hidden;border-radius:6px;background:#eee}
.f{height:100%;width:0;transition:width .6s}
.k{position:absolute;top:0;width:2px;height:100%;background:#fff}
.l{position:relative;height:16px}
.m{position:absolute}
.r{color:#222;font-weight:600}
.x .c{margin-top:12px;height:36px}
.c a{padding:0 16px;line-height:36px;border-radius:6px;color:#fff;background:#222;font-weight:600;text-decoration:none}
@media (prefers-reduced-motion){.f{transition:none}}`,
E=(p,t,c,x,e=p.appendChild(D.createElement(t)))=>(e.className=c,e.textContent=x,e);
customElements.get(N)||(addEventListener("message",e=>{let h=+(e.data||0)["tracker:height"];
if(e.origin==O&&h>0&&h<2e3)for(let f of D.querySelectorAll("iframe"))f.contentWindow==e.source&&(f.style.height=h+"px")}),
customElements.define(N,class extends HTMLElement{
connectedCallback(){let a=this.a=k=>this.getAttribute(k),c=a("cta"),o=a("color"),r=this.shadowRoot||this.attachShadow({mode:"open"}),l;
this.v||=()=>D.hidden||!this.isConnected||this.load();
r.innerHTML=`<style>${C}</style><div class="w ${a("size")=="compact"?"s":c!=null?"x":""}"><div class=t><span class=a></span><span class=d></span></div><div class=b role=progressbar aria-valuemin=0><div class=f></div></div><div class=l aria-hidden=true></div><div class=c><span></span><a target=_blank rel=noopener>Donate</a></div></div>`;
this.z=r.querySelectorAll(".a,.d,.b,.f,.l,.c");
this.z[3].style.background=o||"#0969da";
l=this.z[5];l.firstChild.textContent=c;l=this.k=l.lastChild;
try{l.href=new URL(a("cta-href")||"/donate/"+a("campaign"),O)}catch{}/^https?:$/.test(l.protocol)||(l.href=O);
this.draw();this.load();D.addEventListener("visibilitychange",this.v);
this.i||=setInterval(this.v,1e3*Math.min(3600,Math.max(1,+a("refresh")||60)))}
draw(){let d=this.d,[a,o,b,f,l,c]=this.z,A=(k,v)=>b.setAttribute("aria-"+k,v),t,p,X,M,P,R,i,q;
if(!d)return;A("label",d.title);X=d.texts;c.parentNode.lang=X.lang;
t=d.tiers;p=t.at(-1).amount;M=m=>Math.max(0,Math.min(m,p)),P=m=>(M(m)*100/p).toFixed(2)+"%";
R=d.raised_display;q=X.summary;i=q.indexOf(R);a.replaceChildren(q.slice(0,i),E(a,"b","",R),q.slice(i+R.length));
o.textContent=[this.a("show-donors")!=null&&X.donors,d.closed&&!/x/.test(c.parentNode.className)&&X.ended].filter(x=>x).join(" · ");c.firstChild.textContent=d.closed?X.closed:this.a("cta");c.lastChild.textContent=X.donate;this.k.hidden|=d.closed;
f.style.width=P(d.raised);b.replaceChildren(f);l.replaceChildren();
t.forEach(x=>{E(l,"span",x.reached?"m r":"m",x.label).style.cssText=`left:${q=P(x.amount)};transform:translateX(-${q})`;x.amount>0&&x.amount<p&&(E(b,"i","k","").style.left=q)});
A("valuemax",p);A("valuenow",M(d.raised));A("valuetext",X.value_text)}
load(){let s=this.a("campaign"),L=this.a("locale");fetch(O+"/api/v1/campaigns/"+s+(L?"?locale="+encodeURIComponent(L):""),{cache:"no-cache"}).then(r=>((this.k.hidden=r.status==404)&&console.warn(N,"no campaign",s),r.json())).then(d=>{let X=d.texts;if(!(d.tiers.every(t=>I(t.amount)&&t.label)&&I(d.raised+d.donors)&&d.title&&d.raised_display&&X.summary.includes(d.raised_display)&&X.value_text&&X.donors&&X.donate&&X.lang))throw 0;this.d=d}).catch(()=>0).then(()=>this.draw())}}))})();
