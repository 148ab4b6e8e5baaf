// Usage: npm install @grpc/grpc-js @grpc/proto-loader && node node_client.js proto/pmrs/v1/recommender.proto HOST:PORT USER_ID
// A client this project did not write: Node's @grpc/grpc-js loading the .proto directly.
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const def = loader.loadSync(process.argv[2], {keepCase: true, longs: String, enums: String, defaults: true, oneofs: true});
const pmrs = grpc.loadPackageDefinition(def).pmrs.v1;
const c = new pmrs.Recommender(process.argv[3], grpc.credentials.createInsecure());
const dl = () => ({deadline: Date.now() + 5000});
c.GetBundleInfo({}, dl(), (e, info) => {
  if (e) { console.log('info error', e.code, e.details); process.exit(1); }
  console.log('bundle', info.version, 'users', info.users, 'songs', info.songs, info.indexes.map(i => i.name + ':' + i.spec));
  c.Recommend({user_id: process.argv[4], k: 5, acoustic_share: 0.4}, dl(), (e2, r) => {
    if (e2) { console.log('recommend error', e2.code, e2.details); process.exit(1); }
    console.log('recommend', r.songs.map(s => `${s.title} | ${s.genre} | ${s.source} | ${s.score.toFixed(3)}`));
    c.SimilarSongs({song_id: r.songs[0].song_id, k: 3, mode: 'SIMILARITY_MODE_ACOUSTIC'}, dl(), (e3, s) => {
      console.log('similar', e3 ? e3.details : s.songs.map(x => x.song_id + ' ' + x.source));
      c.Recommend({user_id: 'nobody-at-all', k: 5}, dl(), (e4) => {
        console.log('unknown user ->', e4 && grpc.status[e4.code], e4 && e4.details);
        c.Recommend({user_id: process.argv[4], k: 5000}, dl(), (e5) => {
          console.log('k=5000 ->', e5 && grpc.status[e5.code], e5 && e5.details);
          process.exit(0);
        });
      });
    });
  });
});
