// Herald admin pages: small enhancements on top of server-rendered forms that work without
// JavaScript. Copy buttons, a progress bar for CSV imports, live campaign progress.
'use strict';

(function () {
  function csrfToken() {
    var input = document.querySelector('input[name="_csrf"]');
    return input ? input.value : '';
  }

  // Move focus to a form's error summary, so keyboard and screen-reader users hear it first.
  var summary = document.getElementById('error-summary');
  if (summary) summary.focus();

  // Copy buttons: hidden without JavaScript, where the value stays selectable text.
  var live = document.createElement('p');
  live.className = 'visually-hidden';
  live.setAttribute('role', 'status');
  live.setAttribute('aria-live', 'polite');
  document.body.appendChild(live);

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'absolute';
    area.style.left = '-9999px';
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand('copy');
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error('copy failed'));
  }

  document.querySelectorAll('button.copy').forEach(function (button) {
    button.hidden = false;
    var label = button.textContent;
    button.addEventListener('click', function () {
      copyText(button.getAttribute('data-copy') || '').then(
        function () {
          button.textContent = 'Copied';
          live.textContent = 'Copied to the clipboard';
          setTimeout(function () {
            button.textContent = label;
          }, 2000);
        },
        function () {
          live.textContent = 'Copy failed: select the value and copy it with the keyboard.';
        },
      );
    });
  });

  // CSV import with a progress bar: upload, then poll the import job until it is done.
  var form = document.getElementById('import-form');
  if (form) {
    form.addEventListener('submit', function (event) {
      var fileInput = document.getElementById('csv-file');
      var pasted = document.getElementById('csv');
      var file = fileInput && fileInput.files && fileInput.files[0];
      if (!file && !(pasted && pasted.value.trim())) return;
      event.preventDefault();
      var box = document.getElementById('import-progress');
      var bar = document.getElementById('import-bar');
      var status = document.getElementById('import-status');
      box.hidden = false;
      status.textContent = 'Uploading…';
      var read = file ? file.text() : Promise.resolve(pasted.value);
      read.then(function (text) {
        var request = new XMLHttpRequest();
        request.open('POST', form.getAttribute('action'));
        request.setRequestHeader('content-type', 'text/csv');
        request.setRequestHeader('x-csrf-token', csrfToken());
        request.upload.onprogress = function (progress) {
          if (progress.lengthComputable)
            status.textContent =
              'Uploading ' + Math.round((100 * progress.loaded) / progress.total) + '%';
        };
        request.onload = function () {
          if (request.status !== 202) {
            status.textContent = 'The import failed: ' + request.responseText;
            return;
          }
          poll(JSON.parse(request.responseText).job);
        };
        request.onerror = function () {
          status.textContent = 'The upload failed; check the connection and try again.';
        };
        request.send(text);
      });

      function poll(job) {
        fetch('/admin/imports/' + job + '.json', { credentials: 'same-origin' })
          .then(function (response) {
            return response.json();
          })
          .then(function (state) {
            var percent =
              state.totalRows === 0
                ? 100
                : Math.min(100, Math.floor((100 * state.rows) / state.totalRows));
            if (state.done) percent = 100;
            bar.value = percent;
            bar.textContent = percent + '%';
            status.textContent =
              percent +
              '% · ' +
              state.rows +
              ' of ' +
              state.totalRows +
              ' rows read, ' +
              state.imported +
              ' imported, ' +
              state.duplicates +
              ' already listed, ' +
              state.rejected +
              ' rejected';
            if (state.error) status.textContent += ' · failed: ' + state.error;
            if (!state.done) return setTimeout(poll, 300, job);
            var rejects = (state.rejects || []).slice(0, 10).map(function (reject) {
              return 'line ' + reject.line + ': ' + reject.reason;
            });
            if (rejects.length) status.textContent += '. Rejected: ' + rejects.join('; ');
            var link = document.createElement('a');
            link.href = window.location.pathname;
            link.textContent = 'Show the updated list';
            status.appendChild(document.createTextNode('. '));
            status.appendChild(link);
          });
      }
    });
  }

  // Live campaign progress while sending.
  var progress = document.getElementById('campaign-progress');
  if (progress) {
    var campaign = progress.getAttribute('data-campaign');
    var campaignBar = document.getElementById('campaign-bar');
    var text = document.getElementById('campaign-percent');
    var statusCell = document.getElementById('campaign-status');
    var active = ['sending', 'scheduled'];
    var refresh = function () {
      fetch('/admin/campaigns/' + campaign + '/progress.json', { credentials: 'same-origin' })
        .then(function (response) {
          return response.json();
        })
        .then(function (state) {
          campaignBar.value = state.percent;
          campaignBar.textContent = state.percent + '%';
          text.textContent =
            state.percent +
            '% · ' +
            state.sent +
            ' of ' +
            state.total +
            ' sent, ' +
            state.delivered +
            ' delivered, ' +
            state.deferred +
            ' deferred, ' +
            state.bounced +
            ' bounced';
          statusCell.textContent = state.status;
          progress.setAttribute('data-status', state.status);
          if (active.indexOf(state.status) !== -1 || state.percent < 100) {
            if (active.indexOf(state.status) !== -1) setTimeout(refresh, 1000);
          }
        })
        .catch(function () {
          setTimeout(refresh, 5000);
        });
    };
    if (active.indexOf(progress.getAttribute('data-status')) !== -1) refresh();
  }
})();
